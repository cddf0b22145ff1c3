"""Worker processes: each holds one loaded engine and runs synthesis jobs sent over a pipe."""
