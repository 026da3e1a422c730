#!/usr/bin/env python3
"""Build the "recipes" task: recipe text -> JSON list of generic ingredients.

Output (deterministic for a given --seed):
  labkit/datasets/build/recipes_source.jsonl  {"recipe": str, "ingredients": [str, ...]}

How it works
  * CATALOGUE maps every generic ingredient name (lowercase, plural where natural,
    always spelled the same) to many surface forms: descriptors / varieties
    ("whole milk", "skimmed milk" -> "milk"), countable singular/plural forms
    ("a ripe tomato", "3 plum tomatoes" -> "tomatoes"), fixed phrases that carry
    their own quantity ("the juice of a lemon" -> "lemons") and quantity styles
    (grams, ml, cups, tbsp, a pinch, 2 x 400g tins, half a lemon, "to taste").
  * THEMES group ingredients that plausibly cook together (soup, curry, baking...).
  * TEMPLATES are imperative, multi-step, ingredient-list, narrative and short-note
    patterns with random wording alternatives "[a|b]" and slots for ingredients,
    equipment, times and temperatures (none of which are ingredients).
  * Every ingredient mention is wrapped in invisible markers while the text is
    built; the gold list is read from the markers in textual order (first
    appearance wins, repeats are dropped), so it always matches the text.
  * The template filler (everything outside the markers) is checked to contain no
    ingredient word, so nothing extractable sneaks in unlabelled.

Usage: python3 labkit/datasets/build/make_recipes.py [--seed 1234] [--n 1500]
Standard library only.
"""
import argparse
import collections
import json
import os
import random
import re
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "recipes_source.jsonl")

MAX_WORDS = 60
MIN_WORDS = 5

# ---------------------------------------------------------------------------
# Quantity styles per kind. Numbers are filled from NUMS.
# ---------------------------------------------------------------------------
NUMS = {
    "g": ["50", "75", "100", "120", "125", "150", "200", "250", "300", "350", "400", "500"],
    "gs": ["25", "30", "40", "50", "60", "75", "100"],
    "gm": ["200", "250", "300", "400", "450", "500", "600", "700", "750", "800"],
    "kg": ["1", "1.5", "2"],
    "ml": ["50", "75", "100", "150", "200", "250", "300", "400", "500", "600"],
    "c": ["2", "3", "1 1/2", "two", "three", "1 1/4"],
    "sw": ["2", "3", "two", "three", "four"],
    "n": ["2", "3", "4", "6", "8", "two", "three", "four", "six"],
}

QTY = {
    "mass": ["{g}g", "{g} g", "{g} grams", "{g}g of", "{g} grams of", "{c} cups", "{c} cups of",
             "1 cup", "a cup of", "1/2 cup", "half a cup of", "3/4 cup", "one cup of"],
    "sugar": ["{g}g", "{g} grams of", "{gs}g", "1 cup", "1/2 cup", "a cup of", "1 tbsp", "2 tsp",
              "a teaspoon of", "{sw} tablespoons", "half a cup of", "{c} cups"],
    "liquid": ["{ml} ml", "{ml}ml", "{ml}ml of", "{ml} millilitres of", "a cup of", "1 cup", "1/2 cup",
               "half a cup of", "{c} cups", "a splash of", "a litre of", "half a litre of"],
    "spoon": ["1 tbsp", "2 tbsp", "{sw} tablespoons", "{sw} tablespoons of", "a tablespoon of", "1 tsp",
              "2 tsp", "a teaspoon of", "a drizzle of", "a splash of", "a dash of", "a glug of",
              "a spoonful of", "one tablespoon of"],
    "spice": ["a pinch of", "a big pinch of", "1 tsp", "1/2 tsp", "2 tsp", "half a teaspoon of",
              "a teaspoon of", "{sw} teaspoons", "{sw} teaspoons of", "1 tbsp", "a little", "1/4 tsp"],
    "ginger": ["1 tbsp", "2 tsp", "a teaspoon of", "1 tsp", "{sw} teaspoons of", "1/2 tsp", "a tablespoon of"],
    "herb": ["a handful of", "a small handful of", "a bunch of", "a small bunch of", "2 tbsp",
             "a little", "a generous handful of", "a large handful of", "{sw} tablespoons of"],
    "small": ["a handful of", "a small handful of", "{gs}g", "{gs} grams of", "1/2 cup", "a cup of",
              "2 tbsp", "{sw} tablespoons", "a few", "{g}g", "a quarter cup of"],
    "leafy": ["{g}g", "a bag of", "a large handful of", "a handful of", "{c} cups", "{g} grams of",
              "half a bag of", "{g}g of", "2 big handfuls of"],
    "meat": ["{gm}g", "{gm} grams of", "{gm}g of", "{kg}kg", "half a kilo of", "a pound of",
             "{kg} kg of", "2 lb", "one pound of"],
    "tin": ["a 400g tin of", "2 x 400g tins of", "1 can of", "a tin of", "a can of", "{g}g",
            "two 400g tins of", "1 x 400g can of", "half a tin of"],
    "tinl": ["a 400ml tin of", "1 x 400ml can of", "a can of", "{ml}ml", "half a tin of", "a tin of",
             "{ml} ml", "one can of"],
    "smalltin": ["a tin of", "2 tins of", "a can of", "a 160g tin of", "two small tins of", "{g}g",
                 "1 x 145g can of"],
    "dollop": ["a dollop of", "2 tbsp", "a spoonful of", "{ml}ml", "1/2 cup", "{sw} tablespoons of",
               "a heaped tablespoon of", "{g}g", "a big spoonful of"],
    "cheese": ["{g}g", "{gs}g", "{g} grams of", "a handful of", "1/2 cup", "a cup of", "2 tbsp",
               "{gs}g of", "a generous handful of"],
    "butter": ["{gs}g", "{g}g", "a knob of", "2 tbsp", "1 tbsp", "{sw} tablespoons of", "1/2 cup",
               "a stick of", "{g} grams of", "a small knob of"],
    "bacon": ["{n} rashers of", "{n} slices of", "{gs}g", "{g}g of", "a pack of", "a few rashers of"],
    "deli": ["{gs}g", "{g}g", "{g} grams of", "a handful of", "{gs}g of", "a small piece of"],
    "block": ["a block of", "{g}g", "{g}g of", "half a block of", "a 400g pack of", "a 280g block of"],
    "bread": ["{n} slices of", "a slice of", "{n} thick slices of", "a loaf of", "half a loaf of",
              "a chunk of", "a few slices of"],
}

COUNT_PLURAL = ["2", "two", "3", "three", "4", "four", "a couple of", "2-3", "a few", "6", "five",
                "3-4", "several"]
COUNT_SINGLE = ["a", "one", "1", "a", "a"]

# ---------------------------------------------------------------------------
# Catalogue: generic -> forms.  k = quantity kind (or "count").
#   f: forms used after a quantity (plural for count items)
#   sg: singular forms (count items: "a"/"one"/"half a" + sg)
#   bare: forms used without a quantity (defaults to f)
#   fx: fixed phrases that already include the quantity
#   half: "half a(n) <sg>" allowed; taste: "<form> to taste" allowed
# ---------------------------------------------------------------------------
CATALOGUE = []


def I(g, k, f, sg=None, bare=None, fx=None, half=False, taste=False, grp=None):
    CATALOGUE.append(dict(g=g, k=k, f=f, sg=sg or [], bare=bare or f, fx=fx or [],
                          half=half, taste=taste, grp=grp))


FAT, SEASON = "fat", "season"

# --- vegetables ---
I("onions", "count", ["onions", "brown onions", "red onions", "white onions", "large onions", "yellow onions"],
  sg=["onion", "brown onion", "red onion", "large onion", "small onion", "white onion"],
  bare=["onions", "chopped onions", "diced onion", "sliced red onion", "onion", "red onion"], half=True)
I("garlic", "count", ["cloves of garlic", "garlic cloves", "fat garlic cloves", "peeled garlic cloves"],
  sg=["clove of garlic", "garlic clove", "fat clove of garlic"],
  bare=["garlic", "minced garlic", "crushed garlic", "chopped garlic", "sliced garlic"],
  fx=["a head of garlic", "a whole bulb of garlic", "1 tsp minced garlic", "a teaspoon of crushed garlic"])
I("shallots", "count", ["shallots", "banana shallots", "small shallots"], sg=["shallot", "banana shallot"],
  bare=["shallots", "finely chopped shallot", "sliced shallots", "shallot"])
I("spring onions", "count", ["spring onions", "scallions", "green onions"], sg=["spring onion", "scallion"],
  bare=["spring onions", "sliced spring onions", "scallions", "chopped green onions"],
  fx=["a bunch of spring onions", "a small bunch of scallions"])
I("carrots", "count", ["carrots", "large carrots", "baby carrots", "medium carrots"], sg=["carrot", "large carrot"],
  bare=["carrots", "grated carrot", "diced carrots", "sliced carrots", "carrot"], fx=["500g carrots", "a bag of baby carrots"])
I("celery", "count", ["celery sticks", "sticks of celery", "stalks of celery"],
  sg=["celery stick", "stick of celery", "stalk of celery"], bare=["celery", "chopped celery", "diced celery"])
I("potatoes", "count", ["potatoes", "floury potatoes", "new potatoes", "baby potatoes", "waxy potatoes", "large potatoes"],
  sg=["potato", "large baking potato", "baking potato"], bare=["potatoes", "new potatoes", "cubed potatoes", "diced potato"],
  fx=["500g new potatoes", "1kg floury potatoes", "750g waxy potatoes"])
I("sweet potatoes", "count", ["sweet potatoes", "medium sweet potatoes"], sg=["sweet potato", "large sweet potato"],
  bare=["sweet potatoes", "cubed sweet potato", "sweet potato", "mashed sweet potato"])
I("tomatoes", "count", ["tomatoes", "ripe tomatoes", "plum tomatoes", "vine tomatoes", "large tomatoes"],
  sg=["ripe tomato", "tomato", "large tomato"],
  bare=["tomatoes", "cherry tomatoes", "chopped tomatoes", "diced tomatoes", "tinned chopped tomatoes", "sun-dried tomatoes"],
  fx=["a punnet of cherry tomatoes", "250g cherry tomatoes", "a 400g tin of chopped tomatoes",
      "2 x 400g tins of chopped tomatoes", "a can of plum tomatoes", "a handful of cherry tomatoes"])
I("bell peppers", "count", ["red peppers", "bell peppers", "green peppers", "yellow peppers", "mixed peppers"],
  sg=["red pepper", "green pepper", "yellow bell pepper", "red bell pepper"],
  bare=["sliced peppers", "red peppers", "diced red pepper", "bell peppers", "roasted red peppers"])
I("chillies", "count", ["red chillies", "green chillies", "bird's eye chillies", "jalapenos", "fresh chillies"],
  sg=["red chilli", "green chilli", "fresh chilli", "jalapeno", "chilli"],
  bare=["chopped chilli", "sliced red chilli", "chillies", "chilli", "jalapenos", "green chilli"])
I("courgettes", "count", ["courgettes", "zucchini", "small courgettes"], sg=["courgette", "zucchini", "large courgette"],
  bare=["courgettes", "sliced courgette", "grated zucchini", "diced courgette"])
I("aubergines", "count", ["aubergines", "eggplants"], sg=["aubergine", "eggplant", "large aubergine"],
  bare=["aubergine", "cubed aubergine", "eggplant", "aubergines"])
I("mushrooms", "leafy", ["mushrooms", "button mushrooms", "chestnut mushrooms", "sliced mushrooms", "wild mushrooms",
                         "portobello mushrooms", "shiitake mushrooms"])
I("spinach", "leafy", ["spinach", "baby spinach", "fresh spinach", "spinach leaves", "frozen spinach"])
I("kale", "leafy", ["kale", "curly kale", "cavolo nero", "chopped kale"])
I("broccoli", "leafy", ["broccoli", "broccoli florets", "tenderstem broccoli"],
  fx=["a head of broccoli", "a large head of broccoli"])
I("cauliflower", "leafy", ["cauliflower", "cauliflower florets"],
  fx=["a head of cauliflower", "half a cauliflower", "a small cauliflower"])
I("cabbage", "leafy", ["shredded cabbage", "white cabbage", "savoy cabbage", "red cabbage", "cabbage"],
  fx=["half a white cabbage", "a small savoy cabbage"])
I("lettuce", "leafy", ["lettuce", "romaine lettuce", "little gem lettuce", "iceberg lettuce", "shredded lettuce"],
  fx=["a head of romaine lettuce", "two little gem lettuces", "a crisp iceberg lettuce"])
I("cucumbers", "count", ["cucumbers", "mini cucumbers"], sg=["cucumber", "large cucumber"],
  bare=["cucumber", "diced cucumber", "sliced cucumber"], half=True)
I("peas", "leafy", ["peas", "frozen peas", "garden peas", "petits pois"])
I("green beans", "leafy", ["green beans", "fine green beans", "french beans", "trimmed green beans"])
I("sweetcorn", "leafy", ["sweetcorn", "corn kernels", "tinned sweetcorn", "frozen sweetcorn"],
  fx=["a 200g tin of sweetcorn", "two ears of corn", "2 corn cobs"])
I("leeks", "count", ["leeks", "small leeks"], sg=["leek", "large leek"], bare=["leeks", "sliced leeks", "chopped leek"])
I("beetroot", "count", ["beetroots", "beets", "cooked beetroots"], sg=["beetroot", "large beet"],
  bare=["beetroot", "grated beetroot", "cooked beetroot", "beets"])
I("asparagus", "leafy", ["asparagus", "asparagus spears", "green asparagus"],
  fx=["a bunch of asparagus", "a bundle of asparagus spears"])
I("butternut squash", "mass", ["butternut squash", "diced butternut squash", "squash"],
  fx=["a butternut squash", "half a butternut squash", "1 large butternut squash"])
I("pumpkin", "mass", ["pumpkin", "diced pumpkin", "pumpkin puree", "roasted pumpkin"], fx=["a small pumpkin"])
I("avocados", "count", ["avocados", "ripe avocados", "hass avocados"], sg=["avocado", "ripe avocado", "large avocado"],
  bare=["avocado", "mashed avocado", "sliced avocado", "diced avocado"], half=True)
I("ginger", "ginger", ["fresh ginger", "grated ginger", "ground ginger", "minced ginger"],
  bare=["ginger", "fresh ginger", "grated ginger", "ground ginger"],
  fx=["a thumb of ginger", "a thumb-sized piece of ginger", "a 3cm piece of ginger"])
I("parsnips", "count", ["parsnips", "large parsnips"], sg=["parsnip"], bare=["parsnips", "roasted parsnips", "diced parsnip"])
I("radishes", "count", ["radishes", "breakfast radishes"], sg=["radish"], bare=["radishes", "sliced radishes"],
  fx=["a bunch of radishes"])
I("fennel", "count", ["fennel bulbs", "small fennel bulbs"], sg=["fennel bulb", "small fennel bulb"],
  bare=["fennel", "sliced fennel", "shaved fennel"], half=True)
I("rocket", "leafy", ["rocket", "arugula", "wild rocket", "rocket leaves"])
I("watercress", "leafy", ["watercress", "fresh watercress"])
I("pak choi", "count", ["pak choi", "bok choy", "baby pak choi"], sg=["pak choi", "head of bok choy"],
  bare=["pak choi", "bok choy", "baby pak choi"])
I("olives", "small", ["black olives", "kalamata olives", "green olives", "pitted olives", "olives"])
I("capers", "small", ["capers", "baby capers", "drained capers"])
I("pomegranate", "small", ["pomegranate seeds", "pomegranate arils"], fx=["half a pomegranate", "a pomegranate"])
I("horseradish", "spoon", ["horseradish", "creamed horseradish", "grated horseradish", "horseradish sauce"])

# --- fruit ---
I("lemons", "count", ["lemons", "unwaxed lemons"], sg=["lemon", "unwaxed lemon"],
  bare=["lemon", "lemon juice", "lemon zest", "fresh lemon juice"],
  fx=["the juice of a lemon", "juice of half a lemon", "the zest of a lemon", "a squeeze of lemon",
      "2 tbsp lemon juice", "a lemon wedge"], half=True)
I("limes", "count", ["limes", "juicy limes"], sg=["lime", "juicy lime"],
  bare=["lime", "lime juice", "lime zest", "fresh lime juice", "lime wedges"],
  fx=["the juice of a lime", "juice of half a lime", "the zest of two limes", "a squeeze of lime", "1 tbsp lime juice"],
  half=True)
I("oranges", "count", ["oranges", "blood oranges", "navel oranges"], sg=["orange", "large orange"],
  bare=["orange zest", "orange juice", "orange segments", "oranges"],
  fx=["the juice of an orange", "zest of one orange", "100ml orange juice"], half=True)
I("apples", "count", ["apples", "cooking apples", "eating apples", "granny smith apples", "bramley apples"],
  sg=["apple", "green apple", "cooking apple", "crisp apple"], bare=["grated apple", "sliced apples", "diced apple", "apples"])
I("bananas", "count", ["ripe bananas", "bananas", "overripe bananas"], sg=["banana", "ripe banana", "frozen banana"],
  bare=["mashed banana", "sliced banana", "bananas", "banana"], half=True)
I("strawberries", "small", ["strawberries", "fresh strawberries", "hulled strawberries", "frozen strawberries"],
  fx=["a punnet of strawberries"])
I("blueberries", "small", ["blueberries", "fresh blueberries", "frozen blueberries", "wild blueberries"])
I("raspberries", "small", ["raspberries", "fresh raspberries", "frozen raspberries"])
I("pears", "count", ["pears", "ripe pears", "conference pears"], sg=["pear", "ripe pear"], bare=["pears", "sliced pear"])
I("mangoes", "count", ["mangoes", "ripe mangoes"], sg=["mango", "ripe mango"],
  bare=["mango", "diced mango", "frozen mango chunks"], half=True)
I("pineapple", "mass", ["pineapple", "pineapple chunks", "fresh pineapple", "tinned pineapple"],
  fx=["half a pineapple", "a small pineapple"])
I("peaches", "count", ["peaches", "ripe peaches", "tinned peaches"], sg=["peach", "ripe peach"],
  bare=["sliced peaches", "peaches"])
I("cherries", "small", ["cherries", "pitted cherries", "sour cherries", "glace cherries"])
I("grapes", "small", ["grapes", "red grapes", "seedless grapes", "green grapes"])
I("raisins", "small", ["raisins", "sultanas", "golden raisins"])
I("dates", "small", ["dates", "medjool dates", "pitted dates", "chopped dates"])
I("cranberries", "small", ["dried cranberries", "cranberries", "fresh cranberries"])
I("apricots", "small", ["dried apricots", "apricots", "chopped dried apricots"])
I("coconut", "small", ["desiccated coconut", "shredded coconut", "coconut flakes", "toasted coconut"])

# --- dairy & eggs ---
I("milk", "liquid", ["milk", "whole milk", "skimmed milk", "semi-skimmed milk", "full-fat milk", "warm milk"])
I("butter", "butter", ["butter", "unsalted butter", "salted butter", "softened butter", "melted butter",
                       "cold butter", "cubed butter"], grp=FAT)
I("cream", "liquid", ["double cream", "heavy cream", "single cream", "whipping cream", "cream"])
I("sour cream", "dollop", ["sour cream", "soured cream"])
I("yogurt", "dollop", ["greek yogurt", "natural yoghurt", "plain yogurt", "yogurt", "thick greek yoghurt"])
I("cheddar", "cheese", ["cheddar", "mature cheddar", "grated cheddar", "sharp cheddar", "cheddar cheese",
                        "extra mature cheddar"])
I("parmesan", "cheese", ["parmesan", "grated parmesan", "parmigiano reggiano", "parmesan shavings",
                         "freshly grated parmesan"])
I("mozzarella", "cheese", ["mozzarella", "fresh mozzarella", "buffalo mozzarella", "grated mozzarella"],
  fx=["a ball of mozzarella", "two balls of buffalo mozzarella"])
I("feta", "cheese", ["feta", "crumbled feta", "feta cheese"], fx=["a block of feta", "a 200g block of feta"])
I("cream cheese", "dollop", ["cream cheese", "full-fat cream cheese", "soft cheese"])
I("ricotta", "dollop", ["ricotta", "fresh ricotta", "ricotta cheese"])
I("halloumi", "cheese", ["halloumi", "sliced halloumi"], fx=["a block of halloumi", "a 250g pack of halloumi"])
I("goat cheese", "cheese", ["goat's cheese", "soft goat's cheese", "goat cheese", "crumbled goat's cheese"])
I("eggs", "count", ["eggs", "large eggs", "free-range eggs", "medium eggs", "beaten eggs", "organic eggs"],
  sg=["egg", "large egg", "free-range egg", "beaten egg"],
  bare=["eggs", "beaten eggs", "egg", "egg yolks", "egg whites"])
I("buttermilk", "liquid", ["buttermilk"])

# --- meat ---
I("chicken", "meat", ["chicken thighs", "chicken breasts", "boneless chicken thighs", "diced chicken breast", "chicken",
                      "skinless chicken breasts", "shredded chicken", "chicken drumsticks"],
  fx=["a whole chicken", "2 chicken breasts", "4 chicken thighs", "six chicken drumsticks", "leftover roast chicken"])
I("beef", "meat", ["beef mince", "ground beef", "diced beef", "stewing beef", "beef brisket", "sirloin steak",
                   "braising steak", "lean beef mince"])
I("pork", "meat", ["pork shoulder", "pork mince", "pork loin", "pork belly", "pork chops", "ground pork"])
I("lamb", "meat", ["lamb mince", "diced lamb", "lamb shoulder", "lamb chops", "leg of lamb", "lamb neck fillet"])
I("bacon", "bacon", ["streaky bacon", "smoked bacon", "back bacon", "bacon", "dry-cured bacon"],
  fx=["a pack of lardons", "100g cubed pancetta", "200g lardons"])
I("sausages", "count", ["sausages", "chipolatas", "spicy sausages", "good sausages", "italian sausages"],
  sg=["sausage", "italian sausage"], bare=["sausages", "sliced sausages", "sausage meat", "chipolatas"])
I("chorizo", "deli", ["chorizo", "cooking chorizo", "sliced chorizo", "diced chorizo"])
I("ham", "deli", ["ham", "cooked ham", "smoked ham", "sliced ham", "shredded ham hock"])
I("turkey", "meat", ["turkey mince", "turkey breast", "diced turkey", "ground turkey", "turkey steaks"])
I("duck", "count", ["duck breasts", "duck legs"], sg=["duck breast", "duck leg"],
  bare=["duck", "shredded duck", "duck breast"])

# --- fish & seafood ---
I("salmon", "meat", ["salmon fillets", "salmon", "skinless salmon fillets", "smoked salmon", "hot-smoked salmon"],
  fx=["2 salmon fillets", "four salmon fillets", "a side of salmon"])
I("cod", "meat", ["cod fillets", "cod loin", "skinless cod", "cod"], fx=["2 cod fillets", "two thick cod loins"])
I("prawns", "meat", ["raw king prawns", "king prawns", "cooked prawns", "shrimp", "tiger prawns", "peeled prawns"])
I("tuna", "smalltin", ["tuna", "tuna chunks", "tinned tuna"], fx=["2 tuna steaks", "two fresh tuna steaks"])
I("mackerel", "meat", ["smoked mackerel", "mackerel fillets", "fresh mackerel"])
I("mussels", "meat", ["mussels", "fresh mussels", "cleaned mussels"])
I("anchovies", "count", ["anchovy fillets", "anchovies", "tinned anchovies"], sg=["anchovy fillet", "anchovy"],
  bare=["anchovies", "anchovy fillets", "chopped anchovies"])
I("sardines", "smalltin", ["sardines", "tinned sardines", "fresh sardines"])

# --- grains, pasta, bread ---
I("rice", "mass", ["basmati rice", "long-grain rice", "jasmine rice", "arborio rice", "rice", "brown rice",
                   "risotto rice", "cooked rice", "sushi rice"])
I("pasta", "mass", ["spaghetti", "penne", "fusilli", "dried pasta", "pasta", "linguine", "rigatoni", "tagliatelle",
                    "orzo", "macaroni", "fresh pasta"])
I("noodles", "mass", ["noodles", "udon noodles", "soba noodles", "ramen noodles", "dried noodles",
                      "straight-to-wok noodles"], fx=["2 nests of noodles", "3 nests of dried noodles"])
I("oats", "mass", ["rolled oats", "porridge oats", "oats", "jumbo oats", "oatmeal"])
I("couscous", "mass", ["couscous", "giant couscous", "wholewheat couscous"])
I("quinoa", "mass", ["quinoa", "red quinoa", "cooked quinoa"])
I("bread", "bread", ["sourdough bread", "crusty bread", "day-old bread", "wholemeal bread", "white bread", "bread",
                     "rye bread", "ciabatta"],
  bare=["bread", "crusty bread", "sourdough", "ciabatta", "day-old bread"],
  fx=["a baguette", "a sourdough loaf", "2 pitta breads", "a couple of pitta breads"])
I("breadcrumbs", "small", ["breadcrumbs", "panko breadcrumbs", "dried breadcrumbs", "fresh breadcrumbs", "panko"])
I("tortillas", "count", ["tortillas", "soft tortillas", "tortilla wraps", "wraps"],
  sg=["tortilla", "large tortilla wrap"], bare=["tortillas", "tortilla wraps", "wraps"])
I("barley", "mass", ["pearl barley", "barley"])
I("bulgur", "mass", ["bulgur wheat", "bulgur", "cracked wheat"])
I("polenta", "mass", ["polenta", "quick-cook polenta", "cornmeal"])

# --- spices & seasonings ---
I("salt", "spice", ["salt", "sea salt", "kosher salt", "flaky sea salt", "table salt", "sea salt flakes", "fine salt"],
  taste=True, grp=SEASON)
I("black pepper", "spice", ["black pepper", "freshly ground black pepper", "cracked black pepper", "ground black pepper",
                            "pepper"], taste=True, grp=SEASON)
I("cumin", "spice", ["ground cumin", "cumin seeds", "cumin", "toasted cumin seeds"], grp=SEASON)
I("paprika", "spice", ["smoked paprika", "sweet paprika", "paprika", "hot smoked paprika"], grp=SEASON)
I("turmeric", "spice", ["ground turmeric", "turmeric", "fresh turmeric"], grp=SEASON)
I("cinnamon", "spice", ["ground cinnamon", "cinnamon"], fx=["a cinnamon stick", "2 cinnamon sticks"], grp=SEASON)
I("nutmeg", "spice", ["grated nutmeg", "ground nutmeg", "nutmeg", "freshly grated nutmeg"], grp=SEASON)
I("chilli powder", "spice", ["chilli powder", "hot chilli powder", "mild chilli powder", "ancho chilli powder"], grp=SEASON)
I("curry powder", "spice", ["curry powder", "mild curry powder", "madras curry powder", "hot curry powder"], grp=SEASON)
I("garam masala", "spice", ["garam masala"], grp=SEASON)
I("cardamom", "spice", ["ground cardamom", "cardamom"],
  fx=["4 cardamom pods", "a few cardamom pods", "six green cardamom pods"], grp=SEASON)
I("star anise", "spice", ["star anise"], fx=["2 star anise", "a couple of star anise", "1 star anise"], grp=SEASON)
I("cayenne pepper", "spice", ["cayenne pepper", "cayenne"], taste=True, grp=SEASON)
I("allspice", "spice", ["allspice", "ground allspice"], grp=SEASON)
I("saffron", "spice", ["saffron", "saffron threads", "saffron strands"], grp=SEASON)
I("sumac", "spice", ["sumac", "ground sumac"], grp=SEASON)
I("chilli flakes", "spice", ["chilli flakes", "dried chilli flakes", "crushed chilli flakes"], taste=True, grp=SEASON)
I("oregano", "spice", ["dried oregano", "oregano", "fresh oregano"], grp=SEASON)

# --- herbs ---
I("basil", "herb", ["basil", "fresh basil", "basil leaves", "torn basil", "sweet basil", "thai basil"], grp=SEASON)
I("parsley", "herb", ["parsley", "flat-leaf parsley", "curly parsley", "chopped parsley", "fresh parsley"], grp=SEASON)
I("coriander", "herb", ["coriander", "fresh coriander", "coriander leaves", "cilantro", "chopped coriander"], grp=SEASON)
I("mint", "herb", ["mint", "fresh mint", "mint leaves", "chopped mint"], grp=SEASON)
I("thyme", "herb", ["thyme", "fresh thyme", "thyme leaves", "dried thyme"],
  fx=["a few sprigs of thyme", "4 thyme sprigs", "a sprig of fresh thyme"], grp=SEASON)
I("rosemary", "herb", ["rosemary", "fresh rosemary", "chopped rosemary", "dried rosemary"],
  fx=["2 sprigs of rosemary", "a sprig of rosemary"], grp=SEASON)
I("dill", "herb", ["dill", "fresh dill", "chopped dill", "dill fronds"], grp=SEASON)
I("chives", "herb", ["chives", "snipped chives", "fresh chives", "chopped chives"], grp=SEASON)
I("bay leaves", "count", ["bay leaves", "dried bay leaves", "fresh bay leaves"], sg=["bay leaf", "dried bay leaf"],
  grp=SEASON)
I("sage", "herb", ["sage", "sage leaves", "fresh sage"], grp=SEASON)
I("tarragon", "herb", ["tarragon", "fresh tarragon", "chopped tarragon"], grp=SEASON)

# --- oils ---
I("olive oil", "spoon", ["olive oil", "extra virgin olive oil", "extra-virgin olive oil", "light olive oil",
                         "good olive oil"], grp=FAT)
I("vegetable oil", "spoon", ["vegetable oil", "sunflower oil", "rapeseed oil", "neutral oil", "groundnut oil",
                             "canola oil"], grp=FAT)
I("sesame oil", "spoon", ["sesame oil", "toasted sesame oil"], grp=FAT)
I("coconut oil", "spoon", ["coconut oil", "melted coconut oil", "virgin coconut oil"], grp=FAT)

# --- sauces, condiments, liquids ---
I("soy sauce", "spoon", ["soy sauce", "light soy sauce", "dark soy sauce", "low-sodium soy sauce", "tamari"])
I("fish sauce", "spoon", ["fish sauce", "thai fish sauce"])
I("tomato paste", "spoon", ["tomato paste", "tomato puree", "double-concentrated tomato paste"])
I("ketchup", "spoon", ["ketchup", "tomato ketchup"])
I("mustard", "spoon", ["dijon mustard", "wholegrain mustard", "english mustard", "mustard", "yellow mustard"])
I("mayonnaise", "dollop", ["mayonnaise", "mayo", "good mayonnaise", "light mayonnaise"])
I("honey", "spoon", ["honey", "runny honey", "clear honey", "raw honey"])
I("maple syrup", "spoon", ["maple syrup", "pure maple syrup"])
I("golden syrup", "spoon", ["golden syrup"])
I("vinegar", "spoon", ["cider vinegar", "balsamic vinegar", "malt vinegar", "sherry vinegar", "vinegar"])
I("worcestershire sauce", "spoon", ["worcestershire sauce", "worcester sauce"])
I("hot sauce", "spoon", ["hot sauce", "sriracha", "chilli sauce", "hot chilli sauce"], taste=True)
I("pesto", "dollop", ["pesto", "green pesto", "fresh pesto", "red pesto", "jarred pesto"])
I("stock", "liquid", ["vegetable stock", "stock", "hot stock", "homemade stock", "fresh stock"],
  fx=["a stock cube", "2 stock cubes", "a vegetable stock cube", "1 litre of vegetable stock"])
I("tahini", "dollop", ["tahini", "light tahini"])
I("miso", "spoon", ["white miso", "miso paste", "red miso", "miso"])
I("curry paste", "spoon", ["thai red curry paste", "green curry paste", "curry paste", "korma paste", "tikka paste"])
I("coconut milk", "tinl", ["coconut milk", "light coconut milk", "full-fat coconut milk", "tinned coconut milk"])
I("passata", "liquid", ["passata", "tomato passata"])
I("wine", "liquid", ["dry white wine", "red wine", "white wine"],
  fx=["a glass of white wine", "a glass of red wine", "a splash of white wine"])
I("harissa", "spoon", ["harissa", "harissa paste", "rose harissa"])

# --- baking ---
I("flour", "mass", ["plain flour", "all-purpose flour", "self-raising flour", "strong white flour", "wholemeal flour",
                    "flour", "spelt flour"])
I("sugar", "sugar", ["caster sugar", "granulated sugar", "brown sugar", "light brown sugar", "icing sugar", "white sugar",
                     "demerara sugar", "sugar", "golden caster sugar"])
I("baking powder", "spice", ["baking powder"])
I("baking soda", "spice", ["bicarbonate of soda", "baking soda", "bicarb"])
I("yeast", "spice", ["dried yeast", "fast-action yeast", "instant yeast", "active dry yeast"],
  fx=["a 7g sachet of fast-action yeast", "one sachet of dried yeast"])
I("vanilla", "spoon", ["vanilla extract", "vanilla essence", "vanilla bean paste"],
  bare=["vanilla", "vanilla extract", "vanilla essence"],
  fx=["a vanilla pod", "1 vanilla pod", "seeds from a vanilla pod"])
I("cocoa powder", "mass", ["cocoa powder", "cocoa", "unsweetened cocoa powder", "dutch-process cocoa"])
I("chocolate", "mass", ["dark chocolate", "chocolate chips", "plain chocolate", "bittersweet chocolate",
                        "chopped dark chocolate", "white chocolate", "chocolate"])
I("cornflour", "spice", ["cornflour", "cornstarch"])

# --- nuts & seeds ---
I("almonds", "small", ["flaked almonds", "ground almonds", "almonds", "toasted almonds", "blanched almonds"])
I("walnuts", "small", ["walnuts", "walnut halves", "chopped walnuts"])
I("peanuts", "small", ["peanuts", "roasted peanuts", "crushed peanuts", "dry-roasted peanuts"])
I("cashews", "small", ["cashews", "cashew nuts", "toasted cashews", "raw cashews"])
I("pine nuts", "small", ["pine nuts", "toasted pine nuts", "pine kernels"])
I("hazelnuts", "small", ["hazelnuts", "toasted hazelnuts", "blanched hazelnuts"])
I("pistachios", "small", ["pistachios", "shelled pistachios", "chopped pistachios"])
I("pecans", "small", ["pecans", "pecan halves"])
I("peanut butter", "dollop", ["peanut butter", "crunchy peanut butter", "smooth peanut butter"])
I("sesame seeds", "small", ["sesame seeds", "toasted sesame seeds", "black sesame seeds"])
I("chia seeds", "small", ["chia seeds"])

# --- legumes & soy ---
I("chickpeas", "tin", ["chickpeas", "tinned chickpeas", "cooked chickpeas", "garbanzo beans"])
I("lentils", "mass", ["red lentils", "green lentils", "puy lentils", "lentils", "brown lentils", "split red lentils"])
I("kidney beans", "tin", ["kidney beans", "red kidney beans"])
I("black beans", "tin", ["black beans", "tinned black beans"])
I("cannellini beans", "tin", ["cannellini beans", "white beans"])
I("tofu", "block", ["firm tofu", "silken tofu", "extra-firm tofu", "tofu", "smoked tofu"])
I("edamame", "small", ["edamame", "edamame beans", "shelled edamame", "frozen edamame"])

BY_NAME = {e["g"]: e for e in CATALOGUE}

# ---------------------------------------------------------------------------
# Themes: which ingredients plausibly go together, and dish words for templates.
# ---------------------------------------------------------------------------
THEMES = {
    "soup": (["soup", "broth", "chowder", "winter soup", "soup"],
             "onions garlic carrots celery potatoes leeks tomatoes lentils stock butter|olive oil|salt|black pepper|"
             "thyme|bay leaves|cumin|parsley|cream|butternut squash|pumpkin|sweet potatoes|ginger|coconut milk|"
             "parsnips|peas|spinach|chillies|barley|kale|cannellini beans|bacon|chicken|nutmeg|mint|beetroot|"
             "cauliflower|broccoli|turmeric|miso|noodles|spring onions|mushrooms|fennel|watercress|sweetcorn|"
             "shallots|sour cream|chickpeas"),
    "curry": (["curry", "dal", "weeknight curry", "one-pot curry"],
              "onions garlic ginger chillies tomatoes|coconut milk|chicken|lamb|chickpeas|lentils|spinach|potatoes|"
              "cauliflower|cumin|turmeric|garam masala|curry powder|curry paste|cardamom|cinnamon|coriander|"
              "vegetable oil|salt|rice|yogurt|prawns|tofu|sweet potatoes|aubergines|peas|fish sauce|limes|"
              "chilli powder|bay leaves|cashews|butter|cream|coconut oil|star anise|pak choi|green beans|"
              "tomato paste|mangoes"),
    "pasta": (["ragu", "bake", "one-pan dinner", "weeknight supper", "midweek dinner"],
              "pasta garlic|olive oil|tomatoes|basil|parmesan|chilli flakes|bacon|cream|eggs|black pepper|salt|"
              "mushrooms|spinach|pine nuts|pesto|courgettes|prawns|lemons|anchovies|capers|olives|sausages|beef|"
              "onions|carrots|celery|wine|mozzarella|ricotta|peas|tuna|parsley|butter|passata|tomato paste|"
              "rocket|broccoli|chillies|oregano|chorizo|walnuts|sage|butternut squash|kale|goat cheese|"
              "breadcrumbs|pork|asparagus"),
    "salad": (["salad", "side salad", "grain bowl", "slaw", "lunch bowl"],
              "lettuce cucumbers tomatoes avocados feta olives onions rocket spinach olive oil vinegar lemons|"
              "mustard|honey|salt|black pepper|walnuts|pine nuts|beetroot|goat cheese|chickpeas|quinoa|couscous|"
              "mint|parsley|radishes|apples|pears|mozzarella|basil|bell peppers|sweetcorn|tuna|eggs|chicken|"
              "bulgur|pomegranate|halloumi|sesame seeds|edamame|kale|carrots|cranberries|dill|fennel|oranges|"
              "mangoes|grapes|pistachios|tahini|watercress|cabbage|mayonnaise|pecans|spring onions"),
    "stirfry": (["stir-fry", "wok supper", "fakeaway", "quick stir-fry"],
                "noodles rice soy sauce garlic ginger|spring onions|sesame oil|vegetable oil|chillies|"
                "bell peppers|broccoli|carrots|mushrooms|tofu|chicken|prawns|beef|pork|cashews|peanuts|honey|"
                "fish sauce|limes|coriander|sesame seeds|cornflour|eggs|cabbage|pak choi|edamame|green beans|"
                "peanut butter|sugar|vinegar|miso|hot sauce|star anise|duck|sweetcorn|basil|pineapple|ketchup"),
    "baking": (["cake", "traybake", "crumble", "tart", "loaf cake", "cookie dough", "muffin batter", "sponge"],
               "flour|sugar|butter|eggs|milk|baking powder|baking soda|vanilla|cocoa powder|chocolate|salt|"
               "cinnamon|nutmeg|bananas|apples|blueberries|raspberries|strawberries|lemons|oranges|yogurt|oats|"
               "honey|maple syrup|almonds|walnuts|hazelnuts|raisins|dates|coconut|cream cheese|buttermilk|"
               "golden syrup|carrots|ginger|cranberries|apricots|vegetable oil|peanut butter|cream|pistachios|"
               "cherries|pears|sour cream|pecans|cardamom|allspice|coconut oil|cornflour|peaches|chia seeds"),
    "bread": (["loaf", "focaccia", "dough", "pizza base", "batch of rolls"],
              "flour|yeast|salt|sugar|olive oil|rosemary|olives|garlic|butter|milk|eggs|honey|oats|"
              "sesame seeds|cheddar|thyme|tomatoes|mozzarella|onions|basil|parmesan|walnuts|raisins|"
              "buttermilk|baking soda|polenta|cinnamon|chilli flakes|oregano"),
    "breakfast": (["breakfast", "brunch", "omelette", "frittata", "pancake batter", "hash"],
                  "eggs|bacon|sausages|bread|butter|mushrooms|tomatoes|avocados|milk|oats|yogurt|honey|bananas|"
                  "maple syrup|spinach|cheddar|ham|salmon|chives|salt|black pepper|chilli flakes|cream|cinnamon|"
                  "flour|blueberries|peanut butter|feta|spring onions|hot sauce|black beans|tortillas|chorizo|"
                  "potatoes|baking powder|sugar|bell peppers|cream cheese|parmesan|raspberries|strawberries|"
                  "chia seeds|limes|kale|sweet potatoes"),
    "smoothie": (["smoothie", "dessert", "pudding", "parfait", "breakfast bowl", "sundae"],
                 "bananas|strawberries|blueberries|raspberries|mangoes|pineapple|yogurt|milk|honey|oats|"
                 "peanut butter|spinach|kale|ginger|oranges|dates|cocoa powder|coconut milk|almonds|cream|"
                 "chocolate|sugar|vanilla|peaches|cherries|mint|limes|lemons|maple syrup|coconut|chia seeds|"
                 "grapes|pears|apples|cinnamon|pistachios|hazelnuts|ricotta|cream cheese"),
    "roast": (["roast", "stew", "casserole", "pot roast", "Sunday dinner", "hotpot", "braise"],
              "chicken|beef|lamb|pork|duck|turkey|potatoes|carrots|parsnips|onions|garlic|rosemary|thyme|sage|"
              "bay leaves|olive oil|butter|salt|black pepper|wine|stock|tomato paste|flour|celery|leeks|"
              "mushrooms|bacon|mustard|honey|worcestershire sauce|paprika|barley|cabbage|apples|lemons|"
              "sweet potatoes|butternut squash|beetroot|fennel|oranges|cinnamon|star anise|ginger|soy sauce|"
              "dates|apricots|chickpeas|cumin|harissa|horseradish|tarragon|shallots|cannellini beans|"
              "vegetable oil|parsley|sausages|allspice|kale"),
    "mexican": (["tacos", "burrito filling", "quesadilla", "fajita filling", "taco filling", "nachos"],
                "tortillas|black beans|kidney beans|beef|chicken|onions|garlic|chillies|cumin|paprika|"
                "chilli powder|tomatoes|avocados|limes|coriander|sour cream|cheddar|sweetcorn|bell peppers|rice|"
                "lettuce|hot sauce|salt|oregano|vegetable oil|feta|pork|prawns|cayenne pepper|spring onions|"
                "cabbage|mangoes|pineapple|cocoa powder|honey|radishes|yogurt|sweet potatoes"),
    "fish": (["fish pie", "fish supper", "seafood stew", "paella", "fishcake mix"],
             "salmon|cod|prawns|mussels|mackerel|tuna|sardines|lemons|limes|dill|parsley|butter|olive oil|"
             "garlic|capers|potatoes|peas|cream|wine|chillies|ginger|soy sauce|tomatoes|olives|fennel|"
             "asparagus|green beans|spring onions|salt|black pepper|breadcrumbs|mayonnaise|chives|rice|saffron|"
             "chorizo|anchovies|horseradish|watercress|paprika|cayenne pepper|tarragon|milk|flour|eggs|"
             "leeks|shallots|bell peppers|cucumbers|sesame oil|coriander|honey|miso"),
    "mideast": (["mezze", "traybake", "tagine", "grain salad", "dip", "flatbread supper"],
                "chickpeas|tahini|lemons|garlic|olive oil|cumin|paprika|aubergines|courgettes|bell peppers|"
                "tomatoes|onions|parsley|mint|bulgur|couscous|yogurt|feta|halloumi|pomegranate|pistachios|"
                "harissa|lentils|sumac|cinnamon|allspice|lamb|pine nuts|dates|apricots|cauliflower|carrots|"
                "coriander|honey|chilli flakes|cucumbers|radishes|spinach|sweet potatoes|turmeric|quinoa|"
                "saffron|almonds|raisins|chicken|bread|oregano|salt|black pepper|cardamom|olives"),
}


def _parse_pool(spec):
    # Leading items may be space separated single-word names; everything else is '|' separated.
    out = []
    for chunk in spec.split("|"):
        chunk = chunk.strip()
        if not chunk:
            continue
        if chunk in BY_NAME:
            out.append(chunk)
            continue
        # greedy split of a space separated run into known names (longest first)
        words = chunk.split()
        i = 0
        while i < len(words):
            for j in range(len(words), i, -1):
                cand = " ".join(words[i:j])
                if cand in BY_NAME:
                    out.append(cand)
                    i = j
                    break
            else:
                raise SystemExit("unknown ingredient in theme pool: %r (in %r)" % (words[i], chunk))
    seen = []
    for x in out:
        if x not in seen:
            seen.append(x)
    return seen


THEME_POOLS = {t: (dishes, _parse_pool(spec)) for t, (dishes, spec) in THEMES.items()}

# ---------------------------------------------------------------------------
# Filler vocabulary (never ingredients).
# ---------------------------------------------------------------------------
FILL = {
    "PAN": ["a large pan", "a frying pan", "a heavy-based saucepan", "a wok", "a saucepan", "a casserole dish",
            "a deep pan", "a non-stick pan", "a skillet", "a large pot", "a shallow pan"],
    "BOWL": ["a large bowl", "a mixing bowl", "a bowl", "a big bowl", "a salad bowl", "a wide bowl"],
    "TRAY": ["a baking tray", "a roasting tin", "an ovenproof dish", "a baking dish", "a lined tray", "a shallow dish"],
    "TEMP": ["180C", "200C", "190°C", "220C", "160C fan", "gas mark 4", "gas mark 6", "350F", "400F",
             "200 degrees", "180 degrees C", "fan 170C", "210C"],
    "TIME": ["20 minutes", "25 minutes", "10 minutes", "15 mins", "30 minutes", "half an hour", "40 minutes",
             "45 minutes", "an hour", "twenty minutes", "1 hour", "12-15 minutes", "35 mins", "ten minutes",
             "about 18 minutes", "an hour and a half"],
    "STIME": ["2 minutes", "3 minutes", "five minutes", "a minute or two", "4-5 minutes", "30 seconds",
              "two minutes", "5 mins", "a few minutes", "90 seconds"],
    "LTIME": ["6 hours", "eight hours", "4 hours", "the whole day", "7-8 hours"],
    "NUM": ["2", "4", "6", "two", "four", "3", "eight"],
}

# ---------------------------------------------------------------------------
# Templates.  Placeholders:
#   {ALL} all ingredients (quantities sometimes)  {ALLQ} with quantities  {ALLB} bare
#   {LISTQ}/{LISTB} comma or semicolon list       {NOTE} bare comma list  {NOTEPLUS} bare " + " list
#   {X1} {X2} {X3} positional, {XR1} {XR2} {XR3} the rest after 1/2/3 (non-empty)
#   {FAT} {MAIN} {SEASON} groups (each present group non-empty, absent groups empty)
#   {REPEAT} bare re-mention of an already used seasoning/sauce/etc.
#   {DISH} {PAN} {BOWL} {TRAY} {TEMP} {TIME} {STIME} {LTIME} {NUM}
#   [a|b|c] random wording alternative.  A leading "~" keeps the text lowercase.
# Optional theme restriction per template.
# ---------------------------------------------------------------------------
ALLT = set(THEMES)


def S(spec):
    names = [x.strip() for x in spec.split(",") if x.strip()]
    for x in names:
        if x not in BY_NAME:
            raise SystemExit("unknown ingredient in role set: %r" % x)
    return frozenset(names)


# Roles restrict which ingredient may fill X1 / X2 of a positional template.
AROMATIC = S("onions, garlic, shallots, leeks, spring onions, chillies, ginger, celery")
MEATFISH = S("chicken, beef, pork, lamb, bacon, sausages, chorizo, ham, turkey, duck, salmon, cod, prawns, tuna, "
             "mackerel, mussels, sardines, tofu, halloumi")
FRYVEG = S("mushrooms, courgettes, aubergines, bell peppers, potatoes, sweet potatoes, carrots, fennel, cabbage, "
           "cauliflower, broccoli, kale, spinach, butternut squash, pumpkin, parsnips, asparagus, green beans, "
           "pak choi, sweetcorn, leeks")
FRYABLE = AROMATIC | MEATFISH | FRYVEG
FATS = S("olive oil, vegetable oil, butter, sesame oil, coconut oil")
LIQUIDS = S("milk, stock, coconut milk, passata, wine, cream, tomatoes, buttermilk")
STARCH = S("pasta, rice, noodles, couscous, quinoa, bulgur, barley, polenta, lentils")
PULSES = S("chickpeas, lentils, kidney beans, black beans, cannellini beans")
COOKABLE = FRYABLE | FATS | LIQUIDS | STARCH | PULSES
SOFTEN = AROMATIC | S("bell peppers, fennel, carrots, mushrooms, courgettes, aubergines, cabbage")
SEAR = MEATFISH | S("mushrooms, aubergines, cauliflower")
BOIL = S("potatoes, sweet potatoes, parsnips, carrots, cauliflower, butternut squash, pumpkin, peas, beetroot, "
         "broccoli, eggs, green beans")
WHISK = S("eggs, milk, cream, yogurt, buttermilk, cream cheese, ricotta, sour cream, mayonnaise, tahini, "
          "peanut butter, coconut milk, honey, mustard, soy sauce, miso, olive oil, flour, sugar, butter, vinegar")
BEAT = S("eggs, butter, sugar, cream cheese, cream")
POACH = S("salmon, cod, chicken, eggs, pears, peaches, apples, mackerel")
SKEWER = S("chicken, beef, lamb, pork, prawns, halloumi, tofu, salmon, sausages, turkey, mushrooms, courgettes, "
           "bell peppers, pineapple")
MARINATE = S("chicken, beef, lamb, pork, prawns, halloumi, tofu, salmon, cod, turkey, duck, mackerel, aubergines, "
             "mushrooms")
SOAK = S("chickpeas, oats, lentils, kidney beans, black beans, cannellini beans, barley, dates, apricots, raisins, "
         "chia seeds, cashews")
GRATE = S("carrots, cheddar, parmesan, courgettes, apples, ginger, beetroot, potatoes, cucumbers, chocolate, lemons, "
          "limes, oranges, nutmeg, halloumi, mozzarella, sweet potatoes, garlic, pears")
TOAST = S("almonds, walnuts, peanuts, cashews, pine nuts, hazelnuts, pistachios, pecans, sesame seeds, coconut, oats, "
          "breadcrumbs, bread, cumin, quinoa")
SPREAD = S("yogurt, tahini, ricotta, cream cheese, sour cream, mayonnaise, avocados, tomatoes, beetroot, "
           "peanut butter, pesto, harissa, goat cheese, lettuce, rocket, spinach, watercress, feta, cabbage, "
           "couscous, quinoa, bulgur, rice")
GLASS = S("yogurt, cream, ricotta, cream cheese, sour cream, coconut milk, oats, chia seeds")
PASTE = S("garlic, ginger, chillies, onions, shallots, basil, coriander, parsley, mint, chickpeas, cashews, almonds, "
          "pine nuts, tahini, tomatoes, bell peppers, spring onions, lemons, limes, curry paste")
RUBFAT = S("butter, coconut oil")
RUBDRY = S("flour, oats")
FOLD = S("blueberries, raspberries, strawberries, chocolate, walnuts, pecans, hazelnuts, almonds, raisins, dates, "
         "cranberries, apricots, cherries, bananas, apples, pears, yogurt, cream, cherries, coconut, pistachios")
ROASTABLE = MEATFISH | FRYVEG | S("beetroot, onions, tomatoes")
HOT = ALLT - {"salad", "smoothie"}
SAVOURY_HOT = HOT - {"baking", "bread"}
OVEN = {"baking", "bread", "roast", "pasta", "fish", "mideast", "mexican", "breakfast"}
COLD = {"salad", "smoothie", "mideast", "mexican", "baking", "breakfast"}
BAKE = {"baking", "bread", "breakfast"}
GRILL = {"roast", "fish", "mideast", "mexican", "stirfry", "curry", "breakfast"}

TEMPLATES = [
    # --- imperative ---
    ("[Whisk|Beat|Mix] {X1} with {XR1}, then [leave to rest|set aside] for {STIME}.", BAKE | {"smoothie", "salad", "mideast"}, {1: WHISK}),
    ("[Toss|Mix|Combine] {ALL} [together |]in {BOWL} and serve [straight away|immediately|at once].", COLD | {"pasta", "stirfry"}),
    ("[Saute|Sauté|Brown|Fry] {X1} in {PAN} for {STIME}, then stir in {XR1} and simmer for {TIME}.", SAVOURY_HOT, {1: FRYABLE}),
    ("Heat {FAT} in {PAN}, add {MAIN} and cook for {TIME}. Season with {SEASON}.", SAVOURY_HOT),
    ("Combine {ALL} in {BOWL}, cover and [chill|refrigerate] for {TIME}.", COLD),
    ("[Blitz|Blend|Whizz] {ALL} in a [blender|food processor] until [smooth|silky|completely smooth].",
     {"smoothie", "soup", "mideast", "baking"}),
    ("Preheat the oven to {TEMP}. Mix {X1} and {X2}, fold in {XR2} and bake for {TIME}.", OVEN),
    ("Fry {X1} [until golden|until lightly browned|over a medium heat], add {XR1} and cook for {STIME} more.", SAVOURY_HOT, {1: FRYABLE}),
    ("Roast {MAIN} with {FAT} at {TEMP} for {TIME}, then scatter over {SEASON}.", SAVOURY_HOT),
    ("[Warm|Heat] {FAT} in {PAN}, stir in {MAIN} and finish with {SEASON}.", HOT),
    ("Layer {ALL} in {TRAY} and bake at {TEMP} for {TIME}.", OVEN),
    ("Simmer {X1} with {XR1} for {TIME}, stirring [now and then|occasionally|from time to time].", SAVOURY_HOT, {1: COOKABLE}),
    ("Stir-fry {X1} and {X2} in a [hot|smoking hot|very hot] wok for {STIME}, then add {XR2} and toss [well|to coat].",
     {"stirfry", "curry", "mexican", "fish"}, {1: FRYABLE}),
    ("Rub {SEASON} [into|all over] {MAIN} and leave to marinate for {TIME}.", GRILL),
    ("Drizzle {FAT} over {MAIN}, sprinkle with {SEASON} and grill for {STIME}.", GRILL | {"salad"}),
    ("Bring {X1} to a gentle simmer, add {XR1} and cook [uncovered |]for {TIME}.", SAVOURY_HOT, {1: LIQUIDS}),
    ("Put {ALL} into a slow cooker and leave on low for {LTIME}.", {"soup", "curry", "roast", "mexican", "mideast"}),
    ("Grate {X1} into {BOWL}, add {XR1} and mix well.", ALLT, {1: GRATE}),
    ("Cook {X1} in {PAN} [over a low heat |]for {TIME}, then add {XR1} and [warm through|stir well|heat gently].", HOT, {1: COOKABLE}),
    ("Gently poach {X1} with {XR1} for {TIME}; serve warm.", {"fish", "smoothie", "roast", "soup"}, {1: POACH}),
    ("Thread {X1} onto skewers with {XR1} and [barbecue|grill] for {STIME}, turning once.", GRILL, {1: SKEWER}),
    ("Toast {X1} in a dry frying pan, then toss with {XR1}.", ALLT, {1: TOAST}),
    ("Chop {ALL} [finely|roughly] and mix in {BOWL}. Leave for {TIME} so the flavours come together.", COLD),
    ("Season {MAIN} with {SEASON}, then fry in {FAT} over a medium heat for {TIME}.", SAVOURY_HOT),
    ("Dress {MAIN} with {FAT} and {SEASON} just before serving.", {"salad", "mideast", "pasta", "fish", "mexican"}),
    ("Knead {X1} with {XR1} for {STIME}, then leave to rise [somewhere warm |]for {TIME}.", {"bread"}, {1: S("flour")}),
    ("Rub {X1} into {X2} with your fingertips until sandy, then stir in {XR2}.", {"baking", "bread"}, {1: RUBFAT, 2: RUBDRY}),
    ("Spread {X1} [over|across] a [large plate|platter|board], top with {XR1} and serve.", COLD, {1: SPREAD}),
    ("Scatter {ALL} over the base and bake at {TEMP} until bubbling, about {TIME}.",
     {"pasta", "bread", "mexican", "breakfast"}),
    ("Add {X1} to {PAN} with {XR1}, cover and leave to stew for {TIME}, stirring from time to time.", SAVOURY_HOT, {1: COOKABLE}),
    ("Sear {X1} in {PAN}, lift out, then soften {XR1} in the same pan for {STIME}.", SAVOURY_HOT, {1: SEAR}),
    ("Pour {X1} into {PAN}, add {XR1} and bring to the boil. [Reduce the heat|Turn it down] and cook for {TIME}.", SAVOURY_HOT, {1: LIQUIDS}),
    ("Spoon {X1} into [glasses|bowls|jars] and top with {XR1}. Chill for {TIME}.", {"smoothie", "baking", "breakfast"}, {1: GLASS}),
    ("Blend {X1} with {XR1}, pour into a jug and serve cold.", {"smoothie", "soup"}),
    ("Fold {X1} through {XR1}, spoon into a lined tin and bake at {TEMP} for around {TIME}.", BAKE, {1: FOLD}),
    ("Marinate {X1} in {XR1} for {TIME}, then [grill|griddle|barbecue] for {STIME} [each side|per side].", GRILL, {1: MARINATE}),
    ("Boil {X1} for {STIME}. Drain, then mash with {XR1}.", {"soup", "roast", "fish", "breakfast", "curry"}, {1: BOIL}),
    ("Soak {X1} overnight. The next day, simmer [it |]with {XR1} for {TIME}.", {"soup", "curry", "mideast", "roast"}, {1: SOAK}),
    ("Line {TRAY} with baking paper. Mix {ALL} and press into the tin. Bake at {TEMP} for {TIME}.", {"baking", "breakfast"}),
    ("Cook {X1} according to the packet. Meanwhile, warm {X2} in {PAN} and add {XR2}. Toss everything together.",
     {"pasta", "stirfry", "curry", "mideast", "salad"}, {1: STARCH}),
    ("Whizz {X1} and {X2} into a [rough |smooth |]paste, add {XR2}, stir and serve.", {"mideast", "curry", "pasta", "mexican"}, {1: PASTE}),
    ("Warm {FAT} in {PAN}. Add {MAIN}, cover and cook for {TIME}. Finish with {SEASON} before serving.", SAVOURY_HOT),
    ("In {BOWL}, mix {X1} with {X2}. Add {XR2} a little at a time until combined.", ALLT),
    ("Step 1: heat {FAT}. Step 2: add {MAIN}. Step 3: season with {SEASON} and serve.", SAVOURY_HOT),
    ("Mix {ALL} in {BOWL}. Shape into [small balls|patties|little rounds] and chill for {TIME}.",
     {"baking", "smoothie", "fish", "mideast", "roast"}),
    ("Start with {X1}. Add {X2}, then {XR2}. Cook on a low heat for {TIME}.", HOT, {1: FRYABLE | FATS}),
    ("Fry {X1} with {XR1} for {STIME}. Taste, and add more {REPEAT} if needed.", SAVOURY_HOT, {1: FRYABLE | FATS}),
    ("Mix {ALL}. Taste and adjust with a little extra {REPEAT}.", ALLT),
    ("Cook {X1} with {XR1} in {PAN} for {TIME}, then stir in a bit more {REPEAT} [just before serving|at the end].", HOT, {1: COOKABLE}),
    ("Arrange {ALL} on {TRAY}, [cover with foil|leave uncovered] and roast at {TEMP} for {TIME}.", {"roast", "fish", "mideast"}),
    ("Beat {X1} until pale, add {XR1} and pour into {TRAY}. Bake for {TIME} at {TEMP}.", {"baking", "breakfast"}, {1: BEAT}),
    # --- ingredient list style ---
    ("You'll need: {LISTQ}.", ALLT),
    ("Ingredients: {LISTQ}. Method: mix everything in {BOWL} and [bake|cook] at {TEMP} for {TIME}.", OVEN),
    ("Shopping list for {DISH}: {LISTB}.", ALLT),
    ("For the {DISH} you need {ALLQ}.", ALLT),
    ("What you need - {LISTQ}. Takes about {TIME}.", ALLT),
    ("Serves {NUM}: {LISTQ}.", ALLT),
    ("{DISH} (serves {NUM}) - {LISTQ}.", ALLT),
    ("Ingredients ({NUM} portions): {LISTQ}. Cook everything in {PAN} for {TIME}.", SAVOURY_HOT),
    ("To make the {DISH}, gather {ALLQ}. Prep takes {STIME}, cooking about {TIME}.", HOT),
    ("Makes enough for {NUM}. {LISTQ}. Bake at {TEMP} for {TIME}.", OVEN),
    ("Grab {ALLQ}. That's it, that's the {DISH}.", ALLT),
    # --- narrative ---
    ("My grandmother's {DISH} [starts|always started] with {X1}, then {XR1}, all cooked slowly in {PAN}.", HOT, {1: FRYABLE | FATS | LIQUIDS}),
    ("The secret to a good {DISH} is {X1}; after that it's just {XR1} and patience.", ALLT),
    ("Last night I threw together {ALL} and it turned into a surprisingly good {DISH}.", ALLT),
    ("I always start my {DISH} by softening {X1} in {PAN}. Then I add {XR1} and let it bubble away for {TIME}.", SAVOURY_HOT, {1: SOFTEN}),
    ("Growing up, our {DISH} was nothing fancy: {ALL}, cooked in one battered pan.", HOT),
    ("A friend taught me this {DISH}: {ALL}, and nothing else.", ALLT),
    ("When I'm tired I make a quick {DISH} with {ALL}. It takes {TIME} at most.", ALLT),
    ("Dad's weekend {DISH} used {ALL}, and the whole kitchen smelled amazing.", HOT),
    ("This {DISH} comes together in {TIME}: {ALL}.", ALLT),
    ("Honestly, the best {DISH} I've made [this year|in ages] used only {ALL}.", ALLT),
    ("My flatmate swears by a {DISH} made with {ALL}, baked at {TEMP} for {TIME}.", OVEN),
    ("We had a {DISH} on holiday made with {ALL}, and I've been recreating it ever since.", ALLT),
    ("Nothing beats a lazy Sunday {DISH}: {X1} in the oven first, then {XR1} once it's golden.", OVEN, {1: ROASTABLE}),
    ("My kids only eat this {DISH} if it has {ALL} in it, so that's what they get.", ALLT),
    # --- short notes ---
    ("~{NOTE}, done.", ALLT),
    ("~{NOTE} - {TIME}, {TEMP}.", OVEN),
    ("~quick {DISH}: {NOTE}.", ALLT),
    ("~{NOTE}. {TEMP}, {TIME}.", OVEN),
    ("~{NOTEPLUS}", ALLT),
    ("~leftover {DISH} idea: {NOTE}.", ALLT),
    ("~to buy: {NOTE}", ALLT),
    ("~{DISH} = {NOTEPLUS}, one pan, {TIME}.", HOT),
]

PH_RE = re.compile(r"\{([A-Z0-9]+)\}")
ALT_RE = re.compile(r"\[([^\[\]]*)\]")
MARK_RE = re.compile(r"\x01(\d+)\x02(.*?)\x03", re.S)
ALL_KEYS = {"ALL", "ALLQ", "ALLB", "LISTQ", "LISTB", "NOTE", "NOTEPLUS"}
GROUP_KEYS = {"FAT", "MAIN", "SEASON"}
REPEAT_KINDS = {"spice", "herb", "spoon", "liquid", "dollop", "cheese", "small", "sugar"}


def analyse_template(text):
    keys = set(PH_RE.findall(text))
    info = {"keys": keys}
    a, g = keys & ALL_KEYS, keys & GROUP_KEYS
    pos = sorted(int(k[1:]) for k in keys if re.fullmatch(r"X\d", k))
    rest = sorted(int(k[2:]) for k in keys if re.fullmatch(r"XR\d", k))
    kinds = sum(bool(x) for x in (a, g, pos or rest))
    if kinds != 1:
        raise SystemExit("template must use exactly one slot family: %r" % text)
    if a and len(a) != 1:
        raise SystemExit("template uses two ALL-style slots: %r" % text)
    if pos or rest:
        k = max(pos) if pos else 0
        if pos != list(range(1, k + 1)) or len(rest) > 1 or (rest and rest[0] != k):
            raise SystemExit("bad positional slots: %r" % text)
        info["pos"] = (k, bool(rest))
    info["family"] = "all" if a else ("group" if g else "pos")
    info["groups"] = g
    return info


def template_fits(info, groups, n):
    if info["family"] == "all":
        return n >= 2
    if info["family"] == "pos":
        k, has_rest = info["pos"]
        return n > k if has_rest else n == k
    for name in ("fat", "main", "season"):
        present = name.upper() in info["groups"]
        if present != bool(groups[name]):
            return False
    return True


# ---------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------
def article(word):
    return "an" if word[:1].lower() in "aeiou" else "a"


def fill_nums(r, q):
    return q.format(**{k: r.choice(v) for k, v in NUMS.items()})


def count_phrase(r, e):
    x = r.random()
    if e["half"] and e["sg"] and x < 0.12:
        sg = r.choice(e["sg"])
        return "half %s %s" % (article(sg), sg)
    if e["sg"] and x < 0.4:
        sg = r.choice(e["sg"])
        det = r.choice(COUNT_SINGLE)
        if det == "a":
            det = article(sg)
        return "%s %s" % (det, sg)
    return "%s %s" % (r.choice(COUNT_PLURAL), r.choice(e["f"]))


def mention(r, e, mode, taste_ok=True):
    if mode == "mix":
        mode = "q" if r.random() < 0.55 else "b"
    if mode == "b":
        return r.choice(e["bare"])
    if e["fx"] and r.random() < 0.25:
        return r.choice(e["fx"])
    if taste_ok and e["taste"] and r.random() < 0.25:
        return r.choice(e["f"]) + " to taste"
    if e["k"] == "count":
        return count_phrase(r, e)
    q, form = fill_nums(r, r.choice(QTY[e["k"]])), r.choice(e["f"])
    if form.startswith("tinned ") and re.search(r"\b(tins?|cans?)\b", q):
        form = form[len("tinned "):]  # no "a tin of tinned chickpeas"
    return q + " " + form


def marked(idx, text):
    return "\x01%d\x02%s\x03" % (idx, text)


def join_and(r, xs):
    if len(xs) == 1:
        return xs[0]
    s = r.random()
    if len(xs) >= 3 and s < 0.2:
        return ", ".join(xs[:-1]) + ", and " + xs[-1]
    if s < 0.3:
        return ", ".join(xs[:-1]) + " plus " + xs[-1]
    if s < 0.37:
        return ", ".join(xs[:-1]) + " & " + xs[-1]
    return ", ".join(xs[:-1]) + " and " + xs[-1]


def render(r, tmpl, info, items, dish):
    """items: list of catalogue entries (already ordered). Returns (text, gold)."""
    idx = {e["g"]: i for i, e in enumerate(CATALOGUE)}

    def ms(es, mode, taste_ok=True):
        return [marked(idx[e["g"]], mention(r, e, mode, taste_ok)) for e in es]

    groups = {"fat": [e for e in items if e["grp"] == FAT],
              "season": [e for e in items if e["grp"] == SEASON]}
    groups["main"] = [e for e in items if e["grp"] not in (FAT, SEASON)]

    def slot(key):
        if key == "ALL":
            return join_and(r, ms(items, "mix"))
        if key == "ALLQ":
            return join_and(r, ms(items, "q"))
        if key == "ALLB":
            return join_and(r, ms(items, "b"))
        if key in ("LISTQ", "LISTB"):
            sep = r.choice([", ", ", ", "; "])
            return sep.join(ms(items, "q" if key == "LISTQ" else "b"))
        if key == "NOTE":
            return ", ".join(ms(items, "b"))
        if key == "NOTEPLUS":
            return " + ".join(ms(items, "b"))
        if key in ("FAT", "MAIN", "SEASON"):
            return join_and(r, ms(groups[key.lower()], "mix", key == "SEASON"))
        m = re.fullmatch(r"X(\d)", key)
        if m:
            return ms([items[int(m.group(1)) - 1]], "mix", False)[0]
        m = re.fullmatch(r"XR(\d)", key)
        if m:
            return join_and(r, ms(items[int(m.group(1)):], "mix"))
        if key == "REPEAT":
            cands = [e for e in items if e["k"] in REPEAT_KINDS]
            e = r.choice(cands)
            return marked(idx[e["g"]], r.choice(e["bare"]))
        if key == "DISH":
            return dish
        if key in FILL:
            return r.choice(FILL[key])
        raise KeyError(key)

    lower = tmpl.startswith("~")
    body = tmpl[1:] if lower else tmpl
    body = ALT_RE.sub(lambda m: r.choice(m.group(1).split("|")), body)
    text = PH_RE.sub(lambda m: slot(m.group(1)), body)

    gold = []
    for m in MARK_RE.finditer(text):
        g = CATALOGUE[int(m.group(1))]["g"]
        if g not in gold:
            gold.append(g)
    filler = MARK_RE.sub(" | ", text)
    clean = MARK_RE.sub(lambda m: m.group(2), text)
    clean = re.sub(r"\s+", " ", clean).strip()
    if not lower or r.random() < 0.3:
        clean = clean[:1].upper() + clean[1:]
        clean = re.sub(r"([.!?] )([a-z])", lambda m: m.group(1) + m.group(2).upper(), clean)
    return clean, gold, filler


# Words that must never appear in template filler (ingredient names and forms).
def _forbidden_patterns():
    words = set()
    for e in CATALOGUE:
        words.add(e["g"])
        for lst in (e["f"], e["sg"], e["bare"]):
            words.update(lst)
    words.update(["water", "ice", "oil", "cheese", "beans", "seeds", "nuts", "fruit", "juice",
                  "onion", "tomato", "egg", "lemon", "lime", "noodle", "spice", "herbs", "sauce"])
    words = sorted(words, key=len, reverse=True)
    return re.compile(r"\b(" + "|".join(re.escape(w) for w in words) + r")\b", re.I)


FORBIDDEN = _forbidden_patterns()


def norm_text(s):
    s = s.lower()
    s = re.sub(r"[^a-z\s]", " ", s)  # strips punctuation, digits, symbols
    return re.sub(r"\s+", " ", s).strip()


def stage(e):
    g = e["g"]
    if g in FATS:
        return 0
    if g in AROMATIC:
        return 1
    if e["grp"] == SEASON:
        return 4
    if g in LIQUIDS or e["k"] in ("spoon", "liquid", "tinl", "dollop"):
        return 3
    return 2


def arrange(r, items, cons, dry=False):
    """Move ingredients matching the slot roles to positions 1 (and 2); None if impossible."""
    rest = list(items)
    front = []
    for slot in sorted(cons):
        ok = [e for e in rest if e["g"] in cons[slot]]
        if not ok:
            return None
        pick = r.choice(ok) if not dry else ok[0]
        front.append(pick)
        rest.remove(pick)
    return front + rest


N_DIST = [(2, 8), (3, 24), (4, 28), (5, 22), (6, 11), (7, 7)]


def generate(seed, target):
    r = random.Random(seed)
    infos = [analyse_template(t[0]) for t in TEMPLATES]
    # validate template filler once with a dummy rendering of the raw text
    for (t, *_), info in zip(TEMPLATES, infos):
        raw = PH_RE.sub(" | ", ALT_RE.sub(lambda m: " ".join(m.group(1).split("|")), t))
        if FORBIDDEN.search(raw):
            raise SystemExit("template contains an ingredient word: %r -> %r" % (t, FORBIDDEN.search(raw).group(0)))
    for dishes, _ in THEMES.values():
        for d in dishes:
            if FORBIDDEN.search(d):
                raise SystemExit("dish name contains an ingredient word: %r" % d)

    usage = collections.Counter()
    seen_text, seen_combo = set(), set()
    out = []
    themes = sorted(THEME_POOLS)
    ns = [n for n, w in N_DIST for _ in range(w)]
    attempts = 0
    while len(out) < target:
        attempts += 1
        if attempts > target * 200:
            raise SystemExit("could not reach %d examples (got %d)" % (target, len(out)))
        theme = r.choice(themes)
        dishes, pool = THEME_POOLS[theme]
        n = r.choice(ns)
        if n > len(pool):
            continue
        items = [BY_NAME[g] for g in r.sample(pool, n)]
        if r.random() < 0.5:  # loosely "cooking order": fats, aromatics, mains, liquids, seasonings
            items.sort(key=lambda e: stage(e) + r.random() * 1.6)
        groups = {"fat": [e for e in items if e["grp"] == FAT],
                  "season": [e for e in items if e["grp"] == SEASON],
                  "main": [e for e in items if e["grp"] not in (FAT, SEASON)]}
        cands = []
        for ti, (tpl, info) in enumerate(zip(TEMPLATES, infos)):
            allowed = tpl[1]
            if theme not in allowed or not template_fits(info, groups, n):
                continue
            if "REPEAT" in info["keys"] and not any(e["k"] in REPEAT_KINDS for e in items):
                continue
            if len(tpl) > 2 and arrange(r, items, tpl[2], dry=True) is None:
                continue
            cands.append(ti)
        if not cands:
            continue
        lo = min(usage[ti] for ti in cands)
        cands = [ti for ti in cands if usage[ti] <= lo + 3]
        ti = r.choice(cands)
        tid = "t%03d" % ti
        combo = (frozenset(e["g"] for e in items), tid)
        if combo in seen_combo:
            continue
        if len(TEMPLATES[ti]) > 2:
            items = arrange(r, items, TEMPLATES[ti][2])
        text, gold, filler = render(r, TEMPLATES[ti][0], infos[ti], items, r.choice(dishes))
        bad = FORBIDDEN.search(filler)
        if bad:
            raise SystemExit("filler leak %r in %r" % (bad.group(0), text))
        nw = len(text.split())
        if nw > MAX_WORDS or nw < MIN_WORDS:
            continue
        key = norm_text(text)
        if key in seen_text:
            continue
        assert sorted(gold) == sorted(e["g"] for e in items), (gold, text)
        seen_text.add(key)
        seen_combo.add(combo)
        usage[ti] += 1
        out.append({"recipe": text, "ingredients": gold, "_tid": tid, "_theme": theme})
    return out


def verify(rows):
    names = set(BY_NAME)
    texts, combos = set(), set()
    for row in rows:
        rec, ings = row["recipe"], row["ingredients"]
        assert isinstance(rec, str) and rec.strip(), row
        assert isinstance(ings, list) and 2 <= len(ings) <= 7, row
        assert json.loads(json.dumps(ings)) == ings, row
        assert all(isinstance(x, str) and x for x in ings), row
        assert len(set(ings)) == len(ings), row
        assert set(ings) <= names, row
        assert len(rec.split()) <= MAX_WORDS, row
        k = norm_text(rec)
        assert k not in texts, ("near-duplicate", rec)
        texts.add(k)
        c = (frozenset(ings), row["_tid"])
        assert c not in combos, ("same set + template", row)
        combos.add(c)
        low = rec.lower()
        for g in ings:  # some surface form of each gold ingredient is present
            e = BY_NAME[g]
            forms = e["f"] + e["sg"] + e["bare"] + e["fx"]
            assert any(f.lower() in low for f in forms), (g, rec)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--out", default=DEFAULT_OUT)
    args = ap.parse_args()

    if len(CATALOGUE) < 120 or len(BY_NAME) != len(CATALOGUE):
        raise SystemExit("catalogue too small or has duplicate generic names")
    in_themes = set(g for _, pool in THEME_POOLS.values() for g in pool)
    missing = set(BY_NAME) - in_themes
    if missing:
        raise SystemExit("ingredients in no theme: %s" % sorted(missing))

    rows = generate(args.seed, args.n)
    verify(rows)

    tmp = args.out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps({"recipe": row["recipe"], "ingredients": row["ingredients"]},
                                ensure_ascii=False) + "\n")
    os.replace(tmp, args.out)

    # re-read and check what was written
    with open(args.out, encoding="utf-8") as fh:
        back = [json.loads(line) for line in fh]
    assert [b["recipe"] for b in back] == [x["recipe"] for x in rows]
    assert [b["ingredients"] for b in back] == [x["ingredients"] for x in rows]

    words = [len(x["recipe"].split()) for x in rows]
    hist = collections.Counter(len(x["ingredients"]) for x in rows)
    used = collections.Counter(g for x in rows for g in x["ingredients"])
    tids = collections.Counter(x["_tid"] for x in rows)
    themes = collections.Counter(x["_theme"] for x in rows)
    in_range = sum(12 <= w <= 45 for w in words)
    print("wrote %s" % os.path.relpath(args.out))
    print("count: %d" % len(rows))
    print("ingredients per example: " + ", ".join("%d: %d" % (k, hist[k]) for k in sorted(hist)))
    print("words per recipe: min %d / median %g / max %d (%.1f%% within 12-45)"
          % (min(words), statistics.median(words), max(words), 100.0 * in_range / len(rows)))
    print("distinct generic ingredients used: %d (catalogue %d); least used: %s"
          % (len(used), len(CATALOGUE), ", ".join("%s=%d" % kv for kv in sorted(used.items(), key=lambda kv: kv[1])[:5])))
    print("distinct templates used: %d (defined %d); per-template min %d / max %d"
          % (len(tids), len(TEMPLATES), min(tids.values()), max(tids.values())))
    print("themes: " + ", ".join("%s=%d" % kv for kv in sorted(themes.items())))


if __name__ == "__main__":
    main()
