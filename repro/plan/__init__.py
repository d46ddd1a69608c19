"""From table specs to runs: resolve every row's runs under a profile and seeds (`runs`), say what is
done and what the rest costs (`cost`), and carry it out in dependency order (`orchestrate`, `launchers`).
"""
