"""The local store: calls and settings on the box, durable at every acknowledged write.

``journal`` makes writes durable (append + fdatasync, CRC per line), ``table`` keeps one
table's documents in tinydb (in memory, queried with tinydb's Query) rebuilt from a snapshot
plus the journal, and compacts the journal into a new snapshot atomically.
"""
