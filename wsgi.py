"""gunicorn entry point: ``gunicorn -c gunicorn.conf.py wsgi:app`` (and ``flask --app wsgi ...``).

A configuration error stops the process with one line per problem (no traceback) and exit status 3:
gunicorn's "worker failed to boot", which halts the master instead of respawning the worker.
"""

from app import create_app
from app.errors import ConfigError

try:
    app = create_app()
except ConfigError as exc:
    from app.doctor import refuse_config_error

    refuse_config_error(exc)
