"""A WSGI app that answers every request with one constant JSON body: what gunicorn costs per request
before any application code runs (``api_light_routes.py`` serves it as "the gunicorn floor")."""

BODY = b'{"version":"0.1.0"}'
HEADERS = [("Content-Type", "application/json"), ("Content-Length", str(len(BODY)))]


def app(environ, start_response):
    """``200`` with :data:`BODY`, whatever the request."""
    start_response("200 OK", HEADERS)
    return [BODY]
