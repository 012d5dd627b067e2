"""Benchmarks against peers, one script each (`make bench` runs them all); wrk.py is the
load they share."""
