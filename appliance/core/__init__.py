"""Basics every layer shares: audio frames, party roles, phone numbers and times.

Imports nothing else of the appliance, so any package may depend on it.
"""
