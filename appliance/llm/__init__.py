"""Chat models: one interface (`base.ChatModel`), one file per backend, a router for fallback."""
