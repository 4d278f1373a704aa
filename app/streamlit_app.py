"""handoff's web app: the entry point (``handoff app`` or ``make run`` starts it).

A thin layer over handoff's public API: pages only lay out widgets and call the library.
"""

import streamlit as st

import common
from handoff.errors import AccessError, StoreUnreachableError

st.set_page_config(page_title="handoff", page_icon=":package:", layout="wide")
common.require_login()

pages = [
    st.Page("app_pages/build.py", title="Build", icon=":material/rocket_launch:", default=True),
    st.Page("app_pages/builds.py", title="Builds", icon=":material/pending_actions:"),
    st.Page("app_pages/versions.py", title="Versions", icon=":material/list:"),
    st.Page("app_pages/version_detail.py", title="Version detail", icon=":material/description:", url_path="version"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/verify.py", title="Verify", icon=":material/verified:"),
]
try:
    st.navigation(pages).run()
except (AccessError, StoreUnreachableError) as exc:  # refused by the team server, or it is gone
    st.error(str(exc))
