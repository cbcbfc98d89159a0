"""The self-building paper: template rules, the values it can name, Markdown and self-contained HTML."""
