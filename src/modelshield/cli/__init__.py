"""cli: thin layer — parse arguments, call the library, render, map to an exit code."""
