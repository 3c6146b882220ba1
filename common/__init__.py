"""What the three functions share: settings readers, the vote event, queue keys, the schema."""
