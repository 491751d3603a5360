import threading


def assert_problem(resp, status):
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    return resp.json()


def test_long_poll_returns_as_soon_as_the_job_changes(stack):
    stack.fake.configure(silent=True)  # the job stays running until released
    job = stack.submit().json()
    running = stack.wait_status(job["id"], "running")
    # Release the container shortly after the long-poll starts; the poll must return the change
    # (a new version) well inside its 30 s window.
    timer = threading.Timer(0.3, lambda: (stack.fake.configure(silent=False), stack.fake.release()))
    timer.start()
    try:
        changed = stack.get(job["id"], wait=30, version=running["version"]).json()
    finally:
        timer.cancel()
    assert changed["version"] != running["version"]
    final = stack.wait_terminal(job["id"])
    assert final["status"] == "succeeded"


def test_long_poll_without_change_returns_the_unchanged_view(stack):
    stack.fake.configure(silent=True)
    job = stack.submit().json()
    running = stack.wait_status(job["id"], "running")
    same = stack.get(job["id"], wait=0.3, version=running["version"]).json()
    assert same["version"] == running["version"] and same["status"] == "running"
    stack.fake.configure(silent=False)
    stack.fake.release()


def test_long_poll_on_a_terminal_job_returns_at_once(stack):
    stack.fake.down()
    job = stack.submit().json()
    done = stack.wait_terminal(job["id"])
    again = stack.get(job["id"], wait=30, version=done["version"]).json()
    assert again == done


def test_long_poll_parameters_are_checked(stack):
    job = stack.submit().json()
    body = assert_problem(stack.get(job["id"], wait=31), 400)
    assert body["errors"][0]["field"] == "wait"
    body = assert_problem(stack.get(job["id"], wait=1, version=-1), 400)
    assert body["errors"][0]["field"] == "version"


def test_many_clients_wait_on_one_job(stack):
    stack.fake.configure(silent=True)
    job = stack.submit().json()
    running = stack.wait_status(job["id"], "running")
    results = []

    def poll():
        results.append(stack.get(job["id"], wait=30, version=running["version"]).json())

    threads = [threading.Thread(target=poll) for _ in range(5)]
    for t in threads:
        t.start()
    stack.client.delete(f"/v1/inferences/{job['id']}", headers=stack.auth())
    for t in threads:
        t.join(40)
    stack.fake.configure(silent=False)
    stack.fake.release()
    # All five woke on the one change: the cancel request (the job stays running until the
    # container answers).
    assert len(results) == 5 and all(r["progress"]["phase"] == "cancelling" for r in results)
    assert all(r["status"] == "running" and r["version"] > running["version"] for r in results)
