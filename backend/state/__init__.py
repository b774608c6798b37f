"""What survives a restart: project state, task records, the description cache, the keyword
index and the coordination (counters, errors, locks), on SQLite (one process) or Redis (many).
"""
