"""The page views, one module per area: explore and profiles, browsing, history, proposals, settings, accounts."""
