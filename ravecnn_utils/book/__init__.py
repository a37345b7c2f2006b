"""The book's tooling: ``notebooks`` executes the numbered notebooks with papermill for one
profile (``python -m ravecnn_utils.book``); ``pages`` generates the parameters page from the
notebooks' parameters cells and checks the built book's links (``python -m ravecnn_utils.book.pages``).
"""
