"""Load mpsim's pytest plugin also when the package runs from a source tree without its entry point."""
import mpsim.testing


def pytest_configure(config):
    if not config.pluginmanager.has_plugin("mpsim") and not config.pluginmanager.is_registered(mpsim.testing):
        config.pluginmanager.register(mpsim.testing, "mpsim")
