"""Apps' TLS certificates: checking one a user brings (``pem``), ordering them from an ACME
directory through HTTP-01 (``acme_orders``), and the jobs that issue and renew them on the
router's host (``issuer``).

The API imports ``pem`` to check a brought certificate; the runner of the router's host runs
the issuer jobs, which reach the store through the API's internal endpoints.
"""
