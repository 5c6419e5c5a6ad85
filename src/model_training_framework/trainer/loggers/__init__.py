"""trainer/loggers"""
