"""What the admin CLI reads and does on the live database (short transactions, WAL)."""
