"""Pure LLM API recognition and usage extraction. No I/O."""
