"""Fault-injection suite: each test injects one fault and proves nothing is lost or duplicated (docs/RELIABILITY.md)."""
