"""The package version, here so that every layer can stamp outputs without importing the
package root (which imports the engine)."""

__version__ = "0.1.0"
