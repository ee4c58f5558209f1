"""The example pipeline files. Installed with the package (as data beside `tidegate_dev`) so
that `tidegate demo` finds its pipeline in an installed copy as in a source checkout."""
