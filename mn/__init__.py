"""Mobile Node: client library and command line."""
