"""The agent: conversations and the turn pipeline, in the brand's voice."""
