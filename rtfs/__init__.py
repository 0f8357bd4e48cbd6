"""RTFS: the language of agent plans. read -> compile -> bytecode -> VM."""
