"""Planning builds: from lockfiles to layers and images."""
