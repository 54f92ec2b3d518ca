"""`imgcap index` and `imgcap caption`: scan, the pipeline and its engines (local decode pool, Ray),
the batch work, the rows one batch commits, signals and the summary."""
