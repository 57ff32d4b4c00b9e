"""SQLite storage: the schema, the connection thread and the SQL that maps rows."""
