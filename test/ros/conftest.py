"""ROS tests share one rclpy context per session; it is shut down after the last test (after every node
and executor thread of the tests has been destroyed/joined)."""
import pytest
import rclpy


@pytest.fixture(scope="session", autouse=True)
def rclpy_session():
    yield
    rclpy.try_shutdown()
