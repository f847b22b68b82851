# Doctests run on the pure modules; the pytest plugin is loaded through its entry point, and the
# torch-side packages are exercised by their own tests rather than imported for doctest collection.
collect_ignore_glob = [
    "colsplade/testing/*",
    "colsplade/training/*",
    "colsplade/onnx_export/*",
    "benchmarks/*",
]
