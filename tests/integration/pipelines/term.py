#!/usr/bin/python3
"""Runs until SIGTERM, then prints the time it got the signal and exits 143:
the cancel-latency test compares it with when the cancel was requested."""
import signal
import sys
import time


def on_term(sig, frame):
    print("[WARNING] [stdout] got TERM at %.6f" % time.time(), flush=True)
    sys.exit(143)


signal.signal(signal.SIGTERM, on_term)
print("[INFO] [stdout] ready", flush=True)
while True:
    time.sleep(3600)
