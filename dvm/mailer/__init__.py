"""Mail delivery: templates, message building, SMTP/file backends and the outbox worker."""
