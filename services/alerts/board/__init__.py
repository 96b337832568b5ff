"""The risk board: server-rendered pages for safeguarding leads, served by the alert service."""
