from envgraph.lock import PackageDiff, VersionChange, diff_packages


def test_added_removed_changed_sorted_by_name() -> None:
    old = {"numpy": "2.0.0", "six": "1.16.0", "attrs": "23.1.0", "idna": "3.7"}
    new = {"numpy": "2.1.0", "zipp": "3.20.0", "attrs": "23.1.0", "certifi": "2024.8.30", "idna": "3.8"}
    assert diff_packages(old, new) == PackageDiff(
        added=(("certifi", "2024.8.30"), ("zipp", "3.20.0")),
        removed=(("six", "1.16.0"),),
        changed=(VersionChange("idna", "3.7", "3.8"), VersionChange("numpy", "2.0.0", "2.1.0")),
    )


def test_same_sets_are_empty() -> None:
    assert diff_packages({"a": "1"}, {"a": "1"}).empty
    assert not diff_packages({"a": "1"}, {"a": "2"}).empty
