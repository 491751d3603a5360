"""The job view links the latest live preview while the job samples."""

from __future__ import annotations


def test_a_sampling_job_links_its_live_preview(stack):
    stack.fake.configure(delay_s=1.5)
    job = stack.submit({"prompt": "a cat", "steps": 10}).json()
    view = job
    for _ in range(40):
        if view["progress"].get("preview_url") or view["status"] in ("succeeded", "failed", "cancelled"):
            break
        view = stack.get(job["id"], wait=5, version=view["version"]).json()
    url = view["progress"]["preview_url"]
    assert url and view["progress"]["preview_step"] > 0
    preview = stack.client.get(url)  # signed: no bearer key needed
    assert preview.status_code == 200 and preview.content[:2] == b"\xff\xd8"
    assert stack.wait_terminal(job["id"])["status"] == "succeeded"
