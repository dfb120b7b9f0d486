"""``display`` and its objects as plain text."""


class _Shown:
    def __init__(self, data=None, *args, **kwargs):
        self.data = data

    def __repr__(self):
        return str(self.data)


Markdown = HTML = Image = Latex = _Shown


def display(*objs, **kwargs):
    for obj in objs:
        print(obj)
