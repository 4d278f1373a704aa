"""Verify page: ``handoff verify --store`` in the app: is an uploaded package intact, and is it the
package this store recorded for its version?"""

from __future__ import annotations

import tempfile
from pathlib import Path

import streamlit as st

import common
from handoff.errors import HandoffError, VersionNotFoundError

st.title("Verify a package")
st.caption(
    "Upload a package zip (from **Download package** or `handoff export`). Every file's sha256 is "
    "recomputed against its manifest, the layout is checked, and the zip is compared with the package "
    "this app's store recorded for that version: a rebuilt or edited package is caught even when its "
    "manifest was recomputed."
)
upload = st.file_uploader("Package (.zip)", type=["zip"], key="verify_upload")
if upload is None:
    st.info("Upload a package to verify it.")
    st.stop()

import handoff  # noqa: E402  (after the upload: the page's first paint stays fast)

location = common.store_location()
with tempfile.TemporaryDirectory(prefix="handoff-verify-app-") as scratch:
    path = Path(scratch) / Path(upload.name).name
    path.write_bytes(upload.getvalue())
    try:
        report = handoff.verify_recorded(path, store=common.store(location))
        elsewhere = None
    except VersionNotFoundError as exc:  # a package of a version this store never recorded
        report, elsewhere = handoff.verify(path), exc
    except HandoffError as exc:
        st.error(f"Cannot verify against this store: {exc.render('app')}")
        st.stop()

manifest = report.manifest
named = f"{manifest.get('name')} version {manifest.get('version')}" if manifest else "an unknown version"
if elsewhere is not None:
    st.warning(
        f"This package is {common.say(named)}, which this app's store does not have: it comes from another "
        "store. Its files were checked against its own manifest only."
    )
if report.ok:
    st.success(
        f"Intact: every file of {common.say(named)} matches its manifest"
        + ("." if elsewhere is not None else ", and it is the package this store recorded for that version.")
    )
elif all(p.startswith("recorded:") for p in report.problems):
    st.error(
        f"Every file of {common.say(named)} matches its own manifest, but it is not the package this store "
        "recorded for that version: it comes from another store, or it was rebuilt after recording."
    )
    st.table([{"problem": p} for p in report.problems])
else:
    st.error(f"{common.say(named)}: {len(report.problems)} problem(s) found. Do not deploy this package.")
    st.table([{"problem": p} for p in report.problems])
if manifest:
    st.markdown(
        f"**model:** {common.say(str(manifest.get('name')))} · **version:** {manifest.get('version')} · "
        f"**status:** {common.say(str(manifest.get('status', 'unknown')))}"
    )
