"""Speech-model manifest and the build-time converter (needs torch: not imported at run time)."""
