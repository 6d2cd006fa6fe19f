"""The bundled geolocation databases, installed as the package flowscan._geodata (setup.py
maps it onto this folder) so that importlib.resources finds them after any install: a wheel,
an sdist build or an editable install. The files are listed in databases.json."""
