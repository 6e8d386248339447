"""Pure pricing: genai-prices adapter and user overrides."""
