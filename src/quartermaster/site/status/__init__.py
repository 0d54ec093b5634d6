"""Status messages as stored rows: the messages the site raises itself, and the filtered views
of all messages that the API and the console read. The lowest room: every other room may
raise a message."""
