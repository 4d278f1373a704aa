"""The served app: Streamlit's ASGI ``App`` for ``streamlit_app.py`` behind handoff's ``AppGuard``.

``handoff app`` runs ``streamlit run`` on this file, so every HTTP request and WebSocket handshake
meets the Host/Origin/token checks before any of Streamlit's routes or page logic (see
``handoff/app_guard.py`` for why). The guard's settings come from the environment ``handoff app`` set.
"""

from starlette.middleware import Middleware
from streamlit.starlette import App

from handoff.app_guard import AppGuard, GuardSettings

app = App("streamlit_app.py", middleware=[Middleware(AppGuard, settings=GuardSettings.from_env())])
