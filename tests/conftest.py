"""Load mpsim's pytest plugin also when the package runs from a source tree without its entry point."""
import mpsim.testing


def pytest_addoption(parser, pluginmanager):
    # Registered here rather than in pytest_configure: the plugin's --mpc-configs option must exist before
    # pytest parses the command line (registering now still runs the plugin's own pytest_addoption).
    if not pluginmanager.has_plugin("mpsim") and not pluginmanager.is_registered(mpsim.testing):
        pluginmanager.register(mpsim.testing, "mpsim")
