"""The skulens web UI (Streamlit); run it with ``skulens ui --models DIR``."""

from skulens.extras import require_extra

require_extra("ui", feature="the web UI")
