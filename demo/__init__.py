"""The StarModel demo: `starmodel run demo` serves it."""
