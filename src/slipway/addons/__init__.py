"""Add-ons: services the platform runs for an app (a PostgreSQL database, a Redis), each
reached through variables it adds to the app's config and, from a laptop, through
`slipway db-tunnel`.

The API creates and removes add-ons through it, ``slipwayd`` runs their servers; it uses
the embedded servers (``slipway.embedded``) and ``slipway.host``.
"""
