"""The generation contract's master copy and the tool that writes it into every deployable."""
