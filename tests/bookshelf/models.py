from django.db import models


class Book(models.Model):
    title = models.CharField(max_length=200)
    shelf = models.CharField(max_length=50, blank=True)

    def __str__(self):
        return self.title
