"""The skulens web UI (Streamlit); run it with ``skulens ui --models DIR``."""
