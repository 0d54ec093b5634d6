"""Scale: several site processes on one database, and a simulated fleet."""
