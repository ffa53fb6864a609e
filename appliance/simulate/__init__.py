"""Simulated calls and PBX traffic built from real speech recordings (tests, bench, demo)."""
