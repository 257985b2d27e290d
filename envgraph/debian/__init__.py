"""Debian: root filesystems with mmdebstrap."""
