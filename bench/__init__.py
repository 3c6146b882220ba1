"""The benchmark suite: each stage measured against its ceiling in the same run (``make bench``)."""
