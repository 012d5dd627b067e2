"""Add-ons: services the platform runs for an app (a PostgreSQL database, a Redis), each
reached through variables it adds to the app's config and, from a laptop, through
`slipway db-tunnel`."""
