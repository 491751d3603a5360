import asyncio
import threading

from middleware.adapters.inprocess_notifier import InProcessNotifier


def test_notify_from_another_thread_wakes_the_waiter():
    notifier = InProcessNotifier()

    async def scenario():
        with notifier.subscribe("j1") as sub:
            threading.Timer(0.05, notifier.notify, args=("j1",)).start()
            woke = await sub.wait(10)
        return woke

    assert asyncio.run(scenario()) is True
    assert notifier.subscriber_count("j1") == 0


def test_other_jobs_do_not_wake_and_timeout_returns_false():
    notifier = InProcessNotifier()

    async def scenario():
        with notifier.subscribe("j1") as sub:
            notifier.notify("j2")
            return await sub.wait(0.05)

    assert asyncio.run(scenario()) is False


def test_a_change_between_subscribe_and_wait_is_not_missed():
    notifier = InProcessNotifier()

    async def scenario():
        with notifier.subscribe("j1") as sub:
            notifier.notify("j1")  # before the wait starts
            return await sub.wait(10)

    assert asyncio.run(scenario()) is True


def test_every_subscriber_is_woken():
    notifier = InProcessNotifier()

    async def scenario():
        subs = [notifier.subscribe("j1") for _ in range(3)]
        waits = [asyncio.create_task(s.wait(10)) for s in subs]
        await asyncio.sleep(0)
        notifier.notify("j1")
        results = await asyncio.gather(*waits)
        for s in subs:
            s.__exit__(None, None, None)
        return results

    assert asyncio.run(scenario()) == [True, True, True]
    assert notifier.subscriber_count("j1") == 0


def test_notify_without_subscribers_is_harmless():
    InProcessNotifier().notify("nobody")
