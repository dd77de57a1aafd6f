"""Model adapters behind one small protocol: anthropic, openai (and compatible servers), scripted."""
